namespace AscendCC.Device.Kernels;

/// <summary>
/// Argument checks shared by the vector-unit kernels. Kernels validate once at the entry point and
/// then run on raw pointers, so a wrong length must be caught here rather than as memory corruption.
/// </summary>
internal static class KernelArgs
{
    /// <summary>Throws unless <paramref name="actual"/> equals <paramref name="expected"/>.</summary>
    public static void RequireLength(int actual, long expected, string name)
    {
        if (actual != expected)
        {
            ThrowLength(actual, expected, name);
        }
    }

    /// <summary>Throws unless <paramref name="value"/> is at least <paramref name="minimum"/>.</summary>
    public static void RequireAtLeast(int value, int minimum, string name)
    {
        if (value < minimum)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be at least {minimum} (got {value}).");
        }
    }

    /// <summary>
    /// An output may be the very same memory as an input (in-place) or disjoint from it; a shifted
    /// overlap would make the kernel read elements it has already overwritten.
    /// </summary>
    public static void RequireSameOrDisjoint(ReadOnlySpan<float> input, ReadOnlySpan<float> output, string inputName, string outputName)
    {
        if (input.Overlaps(output, out int offset) && offset != 0)
        {
            throw new ArgumentException(
                $"{outputName} overlaps {inputName} shifted by {offset} elements; it must alias it exactly or not at all.", outputName);
        }
    }

    private static void ThrowLength(int actual, long expected, string name) =>
        throw new ArgumentException($"{name} must have {expected} elements (got {actual}).", name);
}
