# 300,000 dict entries of int -> str.
if __name__ == "__main__":
    table = {i: str(i) for i in range(300_000)}
    print(len(table))
