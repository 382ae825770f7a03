using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace AscendCC.Server.Tests;

/// <summary>Everything the server handled: every request body it read and every response body it wrote.</summary>
internal sealed class BodyRecorder
{
    private readonly ConcurrentQueue<byte[]> _bodies = new();

    public IReadOnlyCollection<byte[]> Bodies => _bodies;

    public long TotalBytes => _bodies.Sum(b => (long)b.Length);

    /// <summary>Delay before each response write (a slow network), or zero.</summary>
    public TimeSpan ResponseWriteDelay { get; set; }

    public void Add(byte[] bytes) => _bodies.Enqueue(bytes);

    /// <summary>A startup filter that puts the recording middleware in front of the server's pipeline.</summary>
    public IStartupFilter Filter() => new RecordingStartupFilter(this);

    private sealed class RecordingStartupFilter(BodyRecorder recorder) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, nextMiddleware) =>
            {
                var request = new TeeStream(context.Request.Body, read: true, TimeSpan.Zero);
                var response = new TeeStream(context.Response.Body, read: false, recorder.ResponseWriteDelay);
                context.Request.Body = request;
                context.Response.Body = response;
                try
                {
                    await nextMiddleware(context);
                }
                finally
                {
                    recorder.Add(request.Captured.ToArray());
                    recorder.Add(response.Captured.ToArray());
                }
            });
            next(app);
        };
    }

    /// <summary>Copies whatever passes through (reads of a request body, writes of a response body).</summary>
    private sealed class TeeStream(Stream inner, bool read, TimeSpan writeDelay) : Stream
    {
        public MemoryStream Captured { get; } = new();

        public override bool CanRead => read;

        public override bool CanSeek => false;

        public override bool CanWrite => !read;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = inner.Read(buffer, offset, count);
            Captured.Write(buffer, offset, n);
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int n = await inner.ReadAsync(buffer, cancellationToken);
            Captured.Write(buffer.Span[..n]);
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Write(byte[] buffer, int offset, int count)
        {
            Captured.Write(buffer, offset, count);
            inner.Write(buffer, offset, count);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Captured.Write(buffer.Span);
            if (writeDelay > TimeSpan.Zero)
            {
                await Task.Delay(writeDelay, cancellationToken);
            }
            await inner.WriteAsync(buffer, cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
