using AscendCC.Device.Hbm;
using AscendCC.Device.Scheduler;
using AscendCC.Protocol.Measurements;

namespace AscendCC.Device.Confidential;

/// <summary>
/// Measures decoded tasks the way <see cref="GraphMeasurement"/> defines: regions by role, never by
/// raw address. The same code measures a model's task list at load and each eager launch against an
/// attested list.
/// </summary>
internal static class TaskListMeasurer
{
    /// <summary>Measures one task into <paramref name="m"/>; null on success, else why it cannot be measured.</summary>
    public static string? Measure(ref DecodedTask t, GraphMeasurement m, HbmMemory hbm, Func<ulong, byte[]?> operatorDigest)
    {
        m.BeginTask((ushort)t.Kind);
        switch (t.Kind)
        {
            case TaskKind.KernelLaunch:
                byte[]? digest = operatorDigest(t.A);
                if (digest is null)
                {
                    return $"no operator is loaded at 0x{t.A:x}";
                }
                m.Operator(digest);
                for (int i = 0; i < t.ArgCount; i++)
                {
                    KernelArgument a = t.Args![i];
                    if (a.IsNone)
                    {
                        m.NoBuffer();
                        continue;
                    }
                    if (!Buffer(m, hbm, a.Address, a.Bytes))
                    {
                        return $"buffer {i} at 0x{a.Address:x}+{a.Bytes} is not inside a region the attested list binds";
                    }
                }
                for (int i = 0; i < t.ScalarCount; i++)
                {
                    KernelScalar s = t.Scalars![i];
                    if (s.Source == ScalarSource.Immediate)
                    {
                        m.Immediate(s.Value);
                        continue;
                    }
                    HbmRegion? r = hbm.Find(s.Value, 8);
                    if (r is null || !m.Indirect(r.Address, (ushort)r.Tag, Package(r), r.ItemName, r.Size, (long)(s.Value - r.Address)))
                    {
                        return $"scalar {i} reads 0x{s.Value:x}, outside a region the attested list binds";
                    }
                }
                break;
            case TaskKind.MemcpyDeviceToDevice:
                if (!Buffer(m, hbm, t.A, (long)t.C) || !Buffer(m, hbm, t.B, (long)t.C))
                {
                    return "copy range is not inside regions the attested list binds";
                }
                break;
            case TaskKind.Memset:
                if (!Buffer(m, hbm, t.A, (long)t.B))
                {
                    return "memset range is not inside a region the attested list binds";
                }
                m.Value(t.C);
                break;
            case TaskKind.Nop:
                break;
            default:
                return $"{t.Kind} cannot be part of an attested task list";
        }
        return null;
    }

    // Weights are named by the package they were unlocked from and their item name, so a measurement
    // signed by one provider never covers another provider's weights of the same name.
    private static ReadOnlySpan<byte> Package(HbmRegion r) => r.Owner is { } c ? c.Identity : default;

    private static bool Buffer(GraphMeasurement m, HbmMemory hbm, ulong address, long bytes)
    {
        HbmRegion? r = hbm.Find(address, bytes);
        return r is not null && m.Buffer(r.Address, (ushort)r.Tag, Package(r), r.ItemName, r.Size, (long)(address - r.Address), bytes);
    }
}
