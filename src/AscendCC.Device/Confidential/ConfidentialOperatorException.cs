namespace AscendCC.Device.Confidential;

/// <summary>A confidential AI CPU operator refused its arguments or its caller.</summary>
internal sealed class ConfidentialOperatorException : Exception
{
    public ConfidentialOperatorException(string message) : base(message)
    {
    }
}
