namespace AscendCC.Device.Kernels;

/// <summary>
/// The number of tokens a decode kernel's loop multiplies, as a type: each count gets a loop of its own
/// with only its products and its accumulators in registers, where a count known only at run time
/// leaves a branch per token in the loop and, past a few tokens, accumulators the JIT spills.
/// </summary>
internal interface ITokenCount
{
    static abstract int Count { get; }
}

internal struct OneToken : ITokenCount { public static int Count => 1; }

internal struct TwoTokens : ITokenCount { public static int Count => 2; }

internal struct ThreeTokens : ITokenCount { public static int Count => 3; }

internal struct FourTokens : ITokenCount { public static int Count => 4; }

internal struct FiveTokens : ITokenCount { public static int Count => 5; }

internal struct SixTokens : ITokenCount { public static int Count => 6; }

internal struct SevenTokens : ITokenCount { public static int Count => 7; }

internal struct EightTokens : ITokenCount { public static int Count => 8; }
