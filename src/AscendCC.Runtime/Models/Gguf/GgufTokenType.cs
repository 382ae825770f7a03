namespace AscendCC.Runtime.Models.Gguf;

/// <summary>A vocabulary entry's kind in <c>tokenizer.ggml.token_type</c> (SentencePiece's piece types; the numbers are the file's).</summary>
public enum GgufTokenType
{
    /// <summary>An ordinary piece.</summary>
    Normal = 1,
    /// <summary>The unknown piece (&lt;unk&gt;).</summary>
    Unknown = 2,
    /// <summary>A control piece (&lt;s&gt;, &lt;/s&gt;): never produced from text.</summary>
    Control = 3,
    /// <summary>A user-defined piece, matched as a whole in text.</summary>
    UserDefined = 4,
    /// <summary>An unused slot.</summary>
    Unused = 5,
    /// <summary>A byte-fallback piece &lt;0xNN&gt;.</summary>
    Byte = 6,
}
