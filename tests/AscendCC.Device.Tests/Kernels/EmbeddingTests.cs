using System.Runtime.InteropServices;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using TorchSharp;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// Embedding gather against torch index_select on the same table. Half-precision tables are rounded by
/// torch (.to(bfloat16/float16)) for the reference and by ElementTypes for the kernel's bytes; both round to
/// nearest even and widening is exact, so results must be equal bit for bit.
/// </summary>
[Category(KernelTestData.Category)]
public class EmbeddingTests
{
    [TestCase(nameof(ElementType.F32), 67, 17)]
    [TestCase(nameof(ElementType.BF16), 67, 17)]
    [TestCase(nameof(ElementType.F16), 67, 17)]
    [TestCase(nameof(ElementType.BF16), 1000, 64)]
    [TestCase(nameof(ElementType.F16), 3, 1)]
    public void GatherMatchesTorch(string typeName, int vocab, int dim)
    {
        var type = Enum.Parse<ElementType>(typeName);
        float[] table = Normal(vocab * dim, vocab + dim);
        int[] ids = [0, vocab - 1, vocab / 2, 1 % vocab, vocab - 1, 2 % vocab];
        byte[] bytes = type switch
        {
            ElementType.F32 => MemoryMarshal.AsBytes(table.AsSpan()).ToArray(),
            ElementType.BF16 => MemoryMarshal.AsBytes(table.Select(ElementTypes.SingleToBF16).ToArray().AsSpan()).ToArray(),
            _ => MemoryMarshal.AsBytes(table.Select(ElementTypes.SingleToF16).ToArray().AsSpan()).ToArray(),
        };
        var torchType = type switch
        {
            ElementType.F32 => ScalarType.Float32,
            ElementType.BF16 => ScalarType.BFloat16,
            _ => ScalarType.Float16,
        };
        using var scope = NewDisposeScope();
        var rounded = tensor(table, [vocab, dim]).to_type(torchType);
        var expected = ToFloats(rounded.index_select(0, tensor(ids.Select(i => (long)i).ToArray())));

        var y = new float[ids.Length * dim];
        Embedding.EmbeddingGather(bytes, type, ids, y, vocab, dim);
        Assert.That(y, Is.EqualTo(expected));
    }

    [TestCase(-1)]
    [TestCase(10)]
    public void IdOutsideVocabularyThrowsNamingItAndWritesNothing(int badId)
    {
        var table = new byte[10 * 4 * 4];
        var y = Enumerable.Repeat(-7f, 3 * 4).ToArray();
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.EmbeddingGather(table, ElementType.F32, [1, badId, 2], y, 10, 4));
        Assert.That(ex!.ParamName, Is.EqualTo("ids"));
        Assert.That(ex.Message, Does.Contain(badId.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.That(y, Is.All.EqualTo(-7f));
    }

    [Test]
    public void WrongTableSizeNamesTheTable()
    {
        var ex = Assert.Throws<ArgumentException>(() => Embedding.EmbeddingGather(new byte[10], ElementType.BF16, [0], new float[4], 2, 4));
        Assert.That(ex!.ParamName, Is.EqualTo("table"));
    }
}
