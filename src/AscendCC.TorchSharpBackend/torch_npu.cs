using System.Diagnostics.CodeAnalysis;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;

namespace AscendCC.TorchSharpBackend;

/// <summary>
/// torch_npu for TorchSharp: the NPU device API (<see cref="npu"/>), functional operators on
/// <see cref="NpuTensor"/>, and the module compiler that runs TorchSharp modules on the NPU.
/// Names follow torch_npu / torch.cuda so Python habits carry over.
/// </summary>
[SuppressMessage("Naming", "CA1708", Justification = "torch_npu's names are lower case by convention.")]
public static partial class torch_npu
{
    /// <summary>torch.npu: devices, memory statistics, streams, events and the compile mode.</summary>
    // torch.npu is spelled in lower case, like TorchSharp's torch.cuda.
#pragma warning disable CS8981
    [SuppressMessage("Design", "CA1034", Justification = "torch_npu.npu mirrors torch.npu; TorchSharp nests torch.cuda the same way.")]
    public static class npu
#pragma warning restore CS8981
    {
        private static int s_currentDevice;
        private static volatile bool s_jitCompile;
        private static readonly AsyncLocal<Stream?> s_currentStream = new();

        /// <summary>True when at least one NPU is present.</summary>
        public static bool is_available() => device_count() > 0;

        /// <summary>Number of NPUs (the ASCENDCC_DEVICE_COUNT environment variable, default 1).</summary>
        public static int device_count() => NpuDeviceRegistry.Count;

        /// <summary>Makes NPU <paramref name="device"/> the current device (process-wide).</summary>
        /// <exception cref="ArgumentOutOfRangeException">No such device; the message gives the valid range.</exception>
        public static void set_device(int device)
        {
            NpuDeviceRegistry.CheckIndex(device);
            Volatile.Write(ref s_currentDevice, device);
        }

        /// <summary>Makes the device named "npu:N" current.</summary>
        /// <exception cref="ArgumentException">Not a device string.</exception>
        public static void set_device(string device) => set_device(NpuDeviceRegistry.Parse(device));

        /// <summary>Index of the current device.</summary>
        public static int current_device() => Volatile.Read(ref s_currentDevice);

        /// <summary>Waits until every stream of <paramref name="device"/> (default: current) has finished; throws the first device error.</summary>
        public static void synchronize(string? device = null) => Context(device).Runtime.Synchronize();

        /// <summary>Bytes held by tensors and compiled standard modules on <paramref name="device"/>.</summary>
        public static long memory_allocated(string? device = null) => Context(device).Allocator.Allocated;

        /// <summary>Peak of <see cref="memory_allocated"/> since start or <see cref="reset_peak_memory_stats"/>.</summary>
        public static long max_memory_allocated(string? device = null) => Context(device).Allocator.PeakAllocated;

        /// <summary>
        /// HBM in use on the device as its usage register reports it: tensors, the allocator's cache,
        /// operator binaries, compiled models (a compiled Llama counts here, not in memory_allocated).
        /// </summary>
        public static long memory_reserved(string? device = null) => Context(device).Runtime.MemoryInfo.Allocated;

        /// <summary>Peak of <see cref="memory_reserved"/> (the device's peak register).</summary>
        public static long max_memory_reserved(string? device = null) => Context(device).Runtime.MemoryInfo.PeakAllocated;

        /// <summary>Restarts both peaks from current usage.</summary>
        public static void reset_peak_memory_stats(string? device = null)
        {
            NpuDeviceContext c = Context(device);
            c.Allocator.ResetPeak();
            c.Runtime.Device.ResetPeakMemory();
        }

        /// <summary>Frees the allocator's cached blocks back to the device (memory_reserved drops).</summary>
        public static void empty_cache(string? device = null) => Context(device).Allocator.EmptyCache();

        /// <summary>Free and total HBM bytes.</summary>
        public static (long Free, long Total) mem_get_info(string? device = null)
        {
            var info = Context(device).Runtime.MemoryInfo;
            return (info.Capacity - info.Allocated, info.Capacity);
        }

        /// <summary>The device's name register.</summary>
        public static string get_device_name(string? device = null) => Context(device).Runtime.Device.Properties.Name;

        /// <summary>The name of NPU <paramref name="device"/>.</summary>
        public static string get_device_name(int device) => NpuDeviceRegistry.Get(device).Runtime.Device.Properties.Name;

        /// <summary>
        /// torch_npu's compile mode: <c>jit_compile: false</c> runs compiled modules eagerly, each
        /// operator compiled and executed on its own (compileAndExecute); <c>true</c> loads the whole
        /// program as one task list and runs it with executeModel (graph mode). Applies to modules
        /// compiled afterwards unless their options say otherwise. Default false.
        /// </summary>
        public static void set_compile_mode(bool jit_compile) => s_jitCompile = jit_compile;

        /// <summary>True when compiled modules run eagerly (see <see cref="set_compile_mode"/>).</summary>
        public static bool is_jit_compile_false() => !s_jitCompile;

        /// <summary>
        /// Installs the policy asked before any NPU data is copied to the host (null allows all). The
        /// confidential-computing layer uses it to keep plaintext on the device.
        /// </summary>
        public static void set_host_read_policy(INpuHostReadPolicy? policy, string? device = null) => Context(device).HostReadPolicy = policy;

        /// <summary>The stream operators on <paramref name="device"/> currently run on.</summary>
        public static Stream current_stream(string? device = null)
        {
            NpuDeviceContext c = Context(device);
            return s_currentStream.Value is { } s && s.Context == c ? s : new Stream(c, c.Runtime.DefaultStream);
        }

        /// <summary>Runs NPU operators on <paramref name="stream"/> until the returned scope is disposed (torch.npu.stream(s)).</summary>
        public static IDisposable stream(Stream stream)
        {
            ArgumentNullException.ThrowIfNull(stream);
            Stream? previous = s_currentStream.Value;
            s_currentStream.Value = stream;
            return new StreamScope(previous);
        }

        internal static ExecutionMode Mode(bool? jitCompile) => (jitCompile ?? s_jitCompile) ? ExecutionMode.Graph : ExecutionMode.Eager;

        internal static NpuDeviceContext Context(string? device) =>
            NpuDeviceRegistry.Get(device is null ? current_device() : NpuDeviceRegistry.Parse(device));

        internal static NpuStream RuntimeStreamFor(NpuDeviceContext context) =>
            s_currentStream.Value is { } s && s.Context == context ? s.RuntimeStream : context.Runtime.DefaultStream;

        internal static int StreamIdFor(NpuDeviceContext context) => RuntimeStreamFor(context).Id;

        private sealed class StreamScope(Stream? previous) : IDisposable
        {
            public void Dispose() => s_currentStream.Value = previous;
        }

        /// <summary>An NPU stream: operators queued on it run in order (torch.npu.Stream).</summary>
        public sealed class Stream
        {
            /// <summary>Creates a stream on <paramref name="device"/> (default: the current device).</summary>
            public Stream(string? device = null)
                : this(Context(device), null)
            {
            }

            internal Stream(NpuDeviceContext context, NpuStream? stream)
            {
                Context = context;
                RuntimeStream = stream ?? context.Runtime.CreateStream();
            }

            internal NpuDeviceContext Context { get; }

            internal NpuStream RuntimeStream { get; }

            /// <summary>The device string.</summary>
            public string device => Context.Name;

            /// <summary>The hardware stream number.</summary>
            public int stream_id => RuntimeStream.Id;

            /// <summary>Waits until everything queued on the stream has run; throws the first failure.</summary>
            public void synchronize() => RuntimeStream.Synchronize();

            /// <summary>Makes later work on this stream wait for <paramref name="npu_event"/>.</summary>
            public void wait_event(Event npu_event)
            {
                ArgumentNullException.ThrowIfNull(npu_event);
                SameDevice(npu_event.Context);
                RuntimeStream.WaitEvent(npu_event.RuntimeEvent);
            }

            /// <summary>Makes later work on this stream wait for what is queued on <paramref name="other"/> now.</summary>
            public void wait_stream(Stream other)
            {
                ArgumentNullException.ThrowIfNull(other);
                wait_event(other.record_event());
            }

            /// <summary>Records <paramref name="npu_event"/> (or a new event) at this point of the stream.</summary>
            public Event record_event(Event? npu_event = null)
            {
                npu_event ??= new Event(Context.Name);
                npu_event.record(this);
                return npu_event;
            }

            internal void SameDevice(NpuDeviceContext other)
            {
                if (other != Context)
                {
                    throw new ArgumentException($"the stream is on {Context.Name} but the event is on {other.Name}; streams and events must share a device");
                }
            }

            /// <inheritdoc />
            public override string ToString() => $"npu.Stream(device={device}, stream_id={stream_id})";
        }

        /// <summary>An NPU event: marks a point in a stream that other streams or the host can wait for (torch.npu.Event).</summary>
        [SuppressMessage("Naming", "CA1716", Justification = "torch.npu.Event is the torch name.")]
        public sealed class Event
        {
            private Stream? _recordedOn;

            /// <summary>Creates an event on <paramref name="device"/> (default: the current device).</summary>
            public Event(string? device = null)
            {
                Context = npu.Context(device);
                RuntimeEvent = Context.Runtime.CreateEvent();
            }

            internal NpuDeviceContext Context { get; }

            internal NpuEvent RuntimeEvent { get; }

            /// <summary>Records the event on <paramref name="on"/> (default: the current stream).</summary>
            public void record(Stream? on = null)
            {
                on ??= current_stream(Context.Name);
                on.SameDevice(Context);
                RuntimeEvent.Reset(on.RuntimeStream);
                RuntimeEvent.Record(on.RuntimeStream);
                _recordedOn = on;
            }

            /// <summary>Makes later work on <paramref name="on"/> (default: the current stream) wait for the event.</summary>
            public void wait(Stream? on = null) => (on ?? current_stream(Context.Name)).wait_event(this);

            /// <summary>Blocks the host until the work before the event's record point has run.</summary>
            public void synchronize()
            {
                // The runtime exposes no host wait on an event; draining the recording stream waits for
                // at least that much.
                _recordedOn?.synchronize();
            }
        }
    }
}
