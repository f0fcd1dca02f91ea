"""A small script and function whose peak memory `perfhint measure` checks for real."""


# perfhint: args=(10**6,)
def squares(n):
    values = [i * i for i in range(n)]
    return sum(values)


def joined(words):
    return " ".join(words)


if __name__ == "__main__":
    print(squares(200_000))
    print(len(joined(["perfhint"] * 50_000)))
