using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Driver;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace AscendCC.Server;

/// <summary>A device, session or package the request names does not exist on this host (404).</summary>
public sealed class UnknownResourceException : Exception
{
    /// <summary>Creates the exception.</summary>
    public UnknownResourceException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public UnknownResourceException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public UnknownResourceException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>A request body is larger than the endpoint takes (413).</summary>
public sealed class RequestTooLargeException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RequestTooLargeException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public RequestTooLargeException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public RequestTooLargeException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>A deployment does not fit the NPU's free HBM (507): the sizes are in the message.</summary>
public sealed class InsufficientHbmException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InsufficientHbmException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public InsufficientHbmException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public InsufficientHbmException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>
/// Turns refusals into RFC 7807 problem details: the device's own refusals (NPU and firmware mailbox
/// errors) and malformed input become 4xx carrying the device's message; anything else stays a 500.
/// </summary>
internal sealed class ProblemExceptionHandler(IProblemDetailsService problems, ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        (int status, string title)? mapped = exception switch
        {
            UnknownResourceException => (StatusCodes.Status404NotFound, "not found"),
            RequestTooLargeException => (StatusCodes.Status413PayloadTooLarge, "request body too large"),
            InsufficientHbmException => (StatusCodes.Status507InsufficientStorage, "the NPU's HBM is too small for this deployment"),
            FirmwareMailboxException => (StatusCodes.Status422UnprocessableEntity, "the NPU firmware refused the request"),
            NpuException => (StatusCodes.Status422UnprocessableEntity, "the NPU refused the request"),
            System.Security.Cryptography.CryptographicException => (StatusCodes.Status422UnprocessableEntity, "the NPU refused the package or record"),
            FormatException => (StatusCodes.Status400BadRequest, "malformed input"),
            ArgumentException => (StatusCodes.Status400BadRequest, "invalid request"),
            BadHttpRequestException b => (b.StatusCode, "bad request"),
            InvalidOperationException => (StatusCodes.Status409Conflict, "the device cannot do this now"),
            _ => null,
        };
        if (mapped is not { } m)
        {
            return false;
        }
        logger.LogWarning("{Method} {Path} refused with {Status}: {Reason}", httpContext.Request.Method, httpContext.Request.Path, m.status, exception.Message);
        httpContext.Response.StatusCode = m.status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = new ProblemDetails { Status = m.status, Title = m.title, Detail = exception.Message },
        });
    }
}
