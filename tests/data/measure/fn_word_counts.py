# perfhint: args=(["alpha", "beta", "gamma"] * 1000,) kwargs={'repeat': 3}
def word_counts(words, repeat=1):
    counts = {}
    for _ in range(repeat):
        for word in words:
            counts[word + str(len(counts))] = counts.get(word, 0) + 1
    return counts
