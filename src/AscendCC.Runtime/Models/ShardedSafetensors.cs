using System.Text.Json;

namespace AscendCC.Runtime.Models;

/// <summary>
/// A checkpoint split over several safetensors files, described by a Hugging Face
/// <c>model.safetensors.index.json</c> whose "weight_map" names the shard holding each tensor.
/// </summary>
public sealed class ShardedSafetensors : IDisposable
{
    private readonly List<SafetensorsFile> _shards;
    private readonly Dictionary<string, CheckpointTensor> _tensors;

    private ShardedSafetensors(string indexPath, List<SafetensorsFile> shards, Dictionary<string, CheckpointTensor> tensors)
    {
        IndexPath = indexPath;
        _shards = shards;
        _tensors = tensors;
    }

    /// <summary>Full path of the index file.</summary>
    public string IndexPath { get; }

    /// <summary>The opened shard files.</summary>
    public IReadOnlyList<SafetensorsFile> Shards => _shards;

    /// <summary>All tensors of all shards by name.</summary>
    public IReadOnlyDictionary<string, CheckpointTensor> Tensors => _tensors;

    /// <summary>
    /// Opens every shard named in the index and checks that each tensor of the weight map is in the
    /// shard the map names, and that no tensor appears in two shards.
    /// </summary>
    public static ShardedSafetensors Open(string indexPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(indexPath);
        indexPath = Path.GetFullPath(indexPath);
        if (!File.Exists(indexPath))
        {
            throw new FileNotFoundException($"Safetensors index not found: {indexPath}.", indexPath);
        }
        string folder = Path.GetDirectoryName(indexPath)!;
        var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointFormatException(indexPath, null, "has no \"weight_map\" object.", "A sharded checkpoint index maps each tensor name to its shard file; re-export the checkpoint.");
            }
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                {
                    throw new CheckpointFormatException(indexPath, entry.Name, "weight_map value is not a file name.", "Re-export the checkpoint.");
                }
                if (!weightMap.TryAdd(entry.Name, entry.Value.GetString()!))
                {
                    throw new CheckpointFormatException(indexPath, entry.Name, "appears more than once in weight_map.", "Re-export the checkpoint.");
                }
            }
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(indexPath, null, $"is not valid JSON ({e.Message}).", "Re-download the checkpoint index.", e);
        }

        var shards = new List<SafetensorsFile>();
        try
        {
            var byFile = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (string shardName in weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                // A shard name with a directory part could make the index read files outside the model folder.
                if (shardName.Length == 0 || Path.GetFileName(shardName) != shardName || shardName is "." or "..")
                {
                    throw new CheckpointFormatException(indexPath, null, $"weight_map names shard '{shardName}', which is not a plain file name in the model folder.", "Shards must sit beside the index; fix the index.");
                }
                var shard = SafetensorsFile.Open(Path.Combine(folder, shardName));
                shards.Add(shard);
                byFile.Add(shardName, shard);
            }
            var tensors = new Dictionary<string, CheckpointTensor>(StringComparer.Ordinal);
            foreach (var (name, shardName) in weightMap)
            {
                if (!byFile[shardName].Tensors.TryGetValue(name, out var tensor))
                {
                    throw new CheckpointFormatException(indexPath, name, $"is mapped to shard '{shardName}', which does not contain it.", "Re-download the shard or fix the index.");
                }
                tensors.Add(name, tensor);
            }
            foreach (var shard in shards)
            {
                foreach (string name in shard.TensorNames)
                {
                    if (weightMap.TryGetValue(name, out string? mapped) && !string.Equals(Path.Combine(folder, mapped), shard.FilePath, StringComparison.Ordinal))
                    {
                        throw new CheckpointFormatException(shard.FilePath, name, $"is also in shard '{mapped}', the one the index names.", "Remove the duplicate; a tensor must live in exactly one shard.");
                    }
                }
            }
            return new ShardedSafetensors(indexPath, shards, tensors);
        }
        catch
        {
            foreach (var s in shards)
            {
                s.Dispose();
            }
            throw;
        }
    }

    /// <summary>Closes every shard.</summary>
    public void Dispose()
    {
        foreach (var s in _shards)
        {
            s.Dispose();
        }
    }
}
