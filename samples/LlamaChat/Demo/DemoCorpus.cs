using System.Globalization;
using System.Text;

namespace LlamaChat.Demo;

/// <summary>
/// The demo model's training text: short templated stories and question/answer facts drawn from
/// fixed word lists by a seeded generator, so every machine builds the same corpus byte for byte.
/// </summary>
/// <remarks>
/// The facts are consistent (each animal always makes the same sound, each thing always has the same
/// colour), which is what lets a model this small answer them; the stories only teach it to write
/// grammatical, story-shaped English.
/// </remarks>
public static class DemoCorpus
{
    /// <summary>The prefix of a user turn in the demo chat format.</summary>
    public const string QuestionPrefix = "Q: ";

    /// <summary>What follows a user turn; the model writes the answer after it.</summary>
    public const string AnswerPrefix = "\nA:";

    /// <summary>
    /// The demo's chat format as a Hugging Face chat template: each question opens a document of its
    /// own (BOS, "Q: ", the question), each answer follows "\nA: " and ends with EOS — exactly the
    /// token stream of a Q/A training document. System messages are not part of what the demo learnt
    /// and are left out.
    /// </summary>
    public const string ChatTemplate =
        "{% for message in messages %}"
        + "{% if message['role'] == 'user' %}{{ bos_token + '" + QuestionPrefix + "' + message['content'] }}"
        + "{% elif message['role'] == 'assistant' %}{{ '\\nA: ' + message['content'] + eos_token }}{% endif %}"
        + "{% endfor %}"
        + "{% if add_generation_prompt %}{{ '\\nA:' }}{% endif %}";

    private static readonly string[] Names = ["Lily", "Tom", "Mia", "Ben", "Sara", "Max", "Anna", "Leo", "Emma", "Sam", "Zoe", "Jack"];
    private static readonly string[] Adjectives = ["little", "happy", "brave", "kind", "small", "curious", "shy", "funny"];
    private static readonly string[] Places = ["park", "garden", "forest", "house", "school", "beach", "farm", "river"];
    private static readonly string[] Verbs = ["play", "run", "sing", "read", "jump", "dance", "draw", "swim"];
    private static readonly string[] Feelings = ["happy", "sad", "scared", "excited", "surprised", "proud"];
    private static readonly string[] Friends = ["dog", "cat", "bird", "frog", "duck", "bunny"];

    /// <summary>Animal → sound: the facts the Q/A lines teach.</summary>
    public static IReadOnlyList<(string Animal, string Sound)> AnimalSounds { get; } =
    [
        ("cow", "moo"), ("dog", "woof"), ("cat", "meow"), ("duck", "quack"), ("sheep", "baa"),
        ("lion", "roar"), ("owl", "hoot"), ("frog", "ribbit"), ("pig", "oink"), ("bee", "buzz"),
    ];

    /// <summary>Thing → colour: the facts the Q/A lines teach.</summary>
    public static IReadOnlyList<(string Thing, string Colour)> ThingColours { get; } =
    [
        ("sky", "blue"), ("grass", "green"), ("sun", "yellow"), ("snow", "white"), ("apple", "red"),
        ("banana", "yellow"), ("night", "black"), ("carrot", "orange"), ("sea", "blue"), ("leaf", "green"),
    ];

    private static readonly string[] Objects = ["ball", "kite", "box", "hat", "book", "cake", "shell", "star"];
    private static readonly string[] Colours = ["red", "blue", "green", "yellow", "pink", "purple"];

    /// <summary>Generates <paramref name="documents"/> documents from <paramref name="seed"/>; each is one story or one Q/A pair.</summary>
    public static IReadOnlyList<string> Generate(int seed, int documents)
    {
        // System.Random with a seed uses the same legacy algorithm on every platform and .NET version,
        // which is what makes the corpus (and hence the cached model's hash) reproducible.
        var random = new Random(seed);
        var docs = new List<string>(documents);
        for (int i = 0; i < documents; i++)
        {
            // Stories are five times longer than a Q/A line, so one story in five still gives them
            // half the tokens; the facts need the rest to be learned in a two-minute run.
            docs.Add(random.Next(5) switch
            {
                0 => Story(random),
                1 or 2 => SoundFact(random),
                _ => ColourOrSumFact(random),
            });
        }
        return docs;
    }

    private static string Pick(Random r, string[] words) => words[r.Next(words.Length)];

    private static string Story(Random r)
    {
        string name = Pick(r, Names), friend = Pick(r, Friends), place = Pick(r, Places), verb = Pick(r, Verbs);
        string colour = Pick(r, Colours), thing = Pick(r, Objects), feeling = Pick(r, Feelings);
        var s = new StringBuilder();
        s.Append(CultureInfo.InvariantCulture, $"Once upon a time, there was a {Pick(r, Adjectives)} girl named {name}. ");
        if (r.Next(2) == 0)
        {
            s.Clear().Append(CultureInfo.InvariantCulture, $"Once upon a time, there was a {Pick(r, Adjectives)} boy named {name}. ");
        }
        s.Append(CultureInfo.InvariantCulture, $"{name} liked to {verb} in the {place}. ");
        s.Append(CultureInfo.InvariantCulture, $"One day, {name} found a {colour} {thing}. ");
        s.Append(CultureInfo.InvariantCulture, $"{name} was very {feeling}. ");
        s.Append(CultureInfo.InvariantCulture, $"{name} showed the {thing} to a {friend}. ");
        s.Append(CultureInfo.InvariantCulture, $"They played with the {thing} all day. The end.");
        return s.ToString();
    }

    private static string SoundFact(Random r)
    {
        (string animal, string sound) = AnimalSounds[r.Next(AnimalSounds.Count)];
        return $"{QuestionPrefix}What does the {animal} say?{AnswerPrefix} The {animal} says {sound}.";
    }

    private static string ColourOrSumFact(Random r)
    {
        if (r.Next(2) == 0)
        {
            (string thing, string colour) = ThingColours[r.Next(ThingColours.Count)];
            return $"{QuestionPrefix}What colour is the {thing}?{AnswerPrefix} The {thing} is {colour}.";
        }
        int a = r.Next(10), b = r.Next(10);
        return string.Create(CultureInfo.InvariantCulture, $"{QuestionPrefix}What is {a} plus {b}?{AnswerPrefix} {a} plus {b} is {a + b}.");
    }
}
