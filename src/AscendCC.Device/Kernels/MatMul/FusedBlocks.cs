using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Up to three launches over one input as one: block numbers run through each part's blocks in turn,
/// so the q/k/v (or gate/up) GEMVs of a layer share one hand-out of blocks to the cores. A struct
/// generic over the part, so the JIT compiles each part's loop in place.
/// </summary>
internal struct FusedBlocks<TPart> : IBlockKernel where TPart : struct, IBlockKernel
{
    public TPart Part0, Part1, Part2;

    /// <summary>Part 0 runs blocks [0, End0), part 1 [End0, End1), part 2 from End1 on.</summary>
    public int End0, End1;

    public readonly void Execute(int block)
    {
        if (block < End0)
        {
            Part0.Execute(block);
        }
        else if (block < End1)
        {
            Part1.Execute(block - End0);
        }
        else
        {
            Part2.Execute(block - End1);
        }
    }
}
