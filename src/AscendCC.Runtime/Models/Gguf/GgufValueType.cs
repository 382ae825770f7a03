using System.Diagnostics.CodeAnalysis;

namespace AscendCC.Runtime.Models.Gguf;

/// <summary>The type tag of a GGUF metadata value (gguf_type in ggml's gguf.h); the numbers are the file's.</summary>
[SuppressMessage("Naming", "CA1720", Justification = "The members are the GGUF specification's type names (GGUF_TYPE_UINT8…).")]
public enum GgufValueType : uint
{
    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8 = 0,
    /// <summary>Signed 8-bit integer.</summary>
    Int8 = 1,
    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16 = 2,
    /// <summary>Signed 16-bit integer.</summary>
    Int16 = 3,
    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32 = 4,
    /// <summary>Signed 32-bit integer.</summary>
    Int32 = 5,
    /// <summary>IEEE-754 binary32.</summary>
    Float32 = 6,
    /// <summary>One byte, 0 or 1.</summary>
    Bool = 7,
    /// <summary>UTF-8 with a u64 length prefix, no terminator.</summary>
    String = 8,
    /// <summary>An element type, a u64 count and the elements.</summary>
    Array = 9,
    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64 = 10,
    /// <summary>Signed 64-bit integer.</summary>
    Int64 = 11,
    /// <summary>IEEE-754 binary64.</summary>
    Float64 = 12,
}
