using System.Security.Cryptography;

namespace AscendCC.Runtime.Trusted.Verification;

/// <summary>A trusted party refused to proceed because attestation did not satisfy its policy. <see cref="Result"/> lists every check.</summary>
public sealed class AttestationFailedException : CryptographicException
{
    /// <summary>Creates the exception for a failed result.</summary>
    public AttestationFailedException(AttestationResult result)
        : base("The device's attestation does not satisfy the policy: " + string.Join("; ", result?.Failures.Select(f => $"{f.Check}: {f.Detail}") ?? []) + ". Nothing was sent to the device.")
    {
        Result = result;
    }

    /// <summary>Creates the exception.</summary>
    public AttestationFailedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public AttestationFailedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public AttestationFailedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The verification result, when available.</summary>
    public AttestationResult? Result { get; }
}
