using System.Security.Cryptography;

namespace AscendCC.Protocol.Packaging;

/// <summary>Base of every model-package failure. No plaintext from a failing item may be used.</summary>
public class ModelPackageException : CryptographicException
{
    /// <summary>Creates the exception.</summary>
    public ModelPackageException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ModelPackageException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public ModelPackageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Name of the affected item, when one is affected.</summary>
    public string? ItemName { get; init; }

    /// <summary>Index of the affected chunk, when one is affected.</summary>
    public int? ChunkIndex { get; init; }
}

/// <summary>The manifest signature does not verify against the model provider's key.</summary>
public sealed class ManifestSignatureException : ModelPackageException
{
    /// <summary>Creates the exception.</summary>
    public ManifestSignatureException()
        : base("The package manifest's signature does not verify against the model provider's key: the manifest was modified or the package comes from another provider. Obtain the package from the provider again.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ManifestSignatureException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public ManifestSignatureException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The package ended before the named chunk was complete.</summary>
public sealed class PackageTruncatedException : ModelPackageException
{
    /// <summary>Creates the exception.</summary>
    public PackageTruncatedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public PackageTruncatedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public PackageTruncatedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A chunk failed AES-GCM authentication: modified, swapped between items, or moved.</summary>
public sealed class ChunkAuthenticationException : ModelPackageException
{
    /// <summary>Creates the exception.</summary>
    public ChunkAuthenticationException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ChunkAuthenticationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public ChunkAuthenticationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The model key does not match the package's key commitment.</summary>
public sealed class ModelKeyMismatchException : ModelPackageException
{
    /// <summary>Creates the exception.</summary>
    public ModelKeyMismatchException()
        : base("The model key does not belong to this package (key commitment mismatch). Request the key released for this package's manifest.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ModelKeyMismatchException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public ModelKeyMismatchException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>An item decrypted but its plaintext does not hash to the manifest's digest.</summary>
public sealed class ItemDigestMismatchException : ModelPackageException
{
    /// <summary>Creates the exception.</summary>
    public ItemDigestMismatchException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ItemDigestMismatchException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public ItemDigestMismatchException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
