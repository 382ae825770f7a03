using AscendCC.Device;
using AscendCC.Runtime.Driver;

namespace AscendCC.Attacks;

/// <summary>
/// A malicious host on a testbed's NPU. It writes task bytes of its choosing into its own stream's
/// task buffer, rings the doorbell and reads the completion (through the driver's pump, which only
/// routes entries by task id), DMAs through host buffers it registers, sends mailbox bytes and pokes
/// the debug port. Nothing here is checked host-side: the device alone decides.
/// </summary>
public sealed class MaliciousHost : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly Testbed _bed;
    private readonly TaskWriter _writer = new();
    private ulong _nextTaskId = 1UL << 48;

    internal MaliciousHost(Testbed bed)
    {
        _bed = bed;
        // The last hardware stream: the legitimate runtime uses the first ones.
        Stream = bed.Device.Properties.StreamCount - 1;
    }

    /// <summary>The stream the attacker submits to.</summary>
    public int Stream { get; }

    /// <summary>The device under attack.</summary>
    public NpuDevice Device => _bed.Device;

    private NpuDriver Driver => _bed.Runtime.Driver;

    /// <summary>A fresh task id from the attacker's range.</summary>
    public ulong NextTaskId() => Interlocked.Increment(ref _nextTaskId);

    /// <summary>
    /// Encodes tasks with <paramref name="encode"/> (the writer and a task id to give the task that
    /// must post a completion, with <see cref="TaskOptions.Notify"/>), submits the raw bytes and
    /// returns that task's completion.
    /// </summary>
    public CompletionEntry Run(Action<TaskWriter, ulong> encode)
    {
        ArgumentNullException.ThrowIfNull(encode);
        lock (_writer)
        {
            ulong id = NextTaskId();
            _writer.Clear();
            encode(_writer, id);
            return Driver.SubmitRaw(Stream, _writer.Written, id, Timeout);
        }
    }

    /// <summary>Submits raw bytes and waits for the completion of <paramref name="taskId"/>.</summary>
    public CompletionEntry Raw(ReadOnlySpan<byte> tasks, ulong taskId) => Driver.SubmitRaw(Stream, tasks, taskId, Timeout);

    /// <summary>Allocates a region; the completion's result is its address.</summary>
    public CompletionEntry Alloc(long bytes, RegionTag tag, long alignment = 64) => Run((w, id) => w.Alloc(id, bytes, alignment, tag));

    /// <summary>Frees the region at <paramref name="address"/>.</summary>
    public CompletionEntry Free(ulong address) => Run((w, id) => w.Free(id, address, TaskOptions.Notify));

    /// <summary>Asks the firmware to map a region for host DMA.</summary>
    public CompletionEntry SetDmaAccess(ulong address, DmaAccess access) => Run((w, id) => w.SetDmaAccess(id, address, access, TaskOptions.Notify));

    /// <summary>DMAs <paramref name="bytes"/> from device memory into a fresh host buffer.</summary>
    public (CompletionEntry Entry, byte[] Data) ReadDevice(ulong address, long bytes)
    {
        var host = new byte[bytes];
        int handle = Device.RegisterHostBuffer(host);
        try
        {
            CompletionEntry e = Run((w, id) => w.CopyDeviceToHost(id, address, handle, 0, bytes, TaskOptions.Notify));
            return (e, host);
        }
        finally
        {
            Device.UnregisterHostBuffer(handle);
        }
    }

    /// <summary>DMAs host bytes into device memory.</summary>
    public CompletionEntry WriteDevice(ulong address, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        int handle = Device.RegisterHostBuffer(data);
        try
        {
            return Run((w, id) => w.CopyHostToDevice(id, handle, 0, address, data.Length, TaskOptions.Notify));
        }
        finally
        {
            Device.UnregisterHostBuffer(handle);
        }
    }

    /// <summary>Copies inside HBM.</summary>
    public CompletionEntry CopyOnDevice(ulong source, ulong destination, long bytes) => Run((w, id) => w.CopyDeviceToDevice(id, source, destination, bytes, TaskOptions.Notify));

    /// <summary>Fills device memory.</summary>
    public CompletionEntry Memset(ulong address, long bytes, byte value) => Run((w, id) => w.Memset(id, address, bytes, value, TaskOptions.Notify));

    /// <summary>Launches the operator loaded at <paramref name="operatorHandle"/> (eager, compileAndExecute).</summary>
    public CompletionEntry Launch(ulong operatorHandle, KernelArgument[] args, KernelScalar[] scalars) =>
        Run((w, id) => w.KernelLaunch(id, operatorHandle, args, scalars, TaskOptions.Notify));

    /// <summary>Places <paramref name="taskList"/> in a fresh task-list region and loads it as a model; the result is the model id.</summary>
    public CompletionEntry LoadModel(ReadOnlySpan<byte> taskList)
    {
        CompletionEntry alloc = Alloc(taskList.Length, RegionTag.TaskList);
        if (!alloc.Succeeded)
        {
            return alloc;
        }
        CompletionEntry write = WriteDevice(alloc.Result, taskList.ToArray());
        if (!write.Succeeded)
        {
            return write;
        }
        int length = taskList.Length;
        return Run((w, id) => w.LoadModel(id, alloc.Result, length));
    }

    /// <summary>Runs a loaded model.</summary>
    public CompletionEntry ExecuteModel(int modelId) => Run((w, id) => w.ExecuteModel(id, modelId, TaskOptions.Notify));

    /// <summary>Sends raw mailbox bytes; returns the status and the payload or error text.</summary>
    public (MailboxStatus Status, byte[] Payload, string Text) Mailbox(MailboxCommand command, ReadOnlySpan<byte> payload)
    {
        byte[] response = Device.Mailbox(MailboxMessage.Request(command, payload));
        MailboxStatus status = MailboxMessage.Parse(response, out ReadOnlySpan<byte> body);
        return (status, body.ToArray(), status == MailboxStatus.Ok ? "" : MailboxMessage.ErrorText(response));
    }

    /// <summary>Describes a completion for evidence.</summary>
    public static string Describe(in CompletionEntry e) =>
        $"{(e.Kind == 0 ? "task" : e.Kind.ToString())} → {e.Status}{(e.Detail is null ? "" : $": {e.Detail}")}";

    /// <inheritdoc />
    public void Dispose()
    {
    }
}
