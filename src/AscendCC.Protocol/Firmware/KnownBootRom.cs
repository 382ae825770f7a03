namespace AscendCC.Protocol.Firmware;

/// <summary>
/// Identity of the genuine boot ROM. The ROM is immutable silicon, so its measurement is a constant
/// the manufacturer publishes; the ROM extends it into the BootRom register before anything else runs.
/// </summary>
public static class KnownBootRom
{
    /// <summary>The identity string of boot ROM revision 1 (the simulated ROM's "code").</summary>
    public static ReadOnlySpan<byte> Identity => "AscendCC simulated boot ROM rev 1 (verifies CMS firmware, anti-rollback fuses, DICE layering)"u8;
}
