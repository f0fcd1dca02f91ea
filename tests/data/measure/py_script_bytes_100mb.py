# 100 MiB of bytes, every byte written by the repetition.
if __name__ == "__main__":
    data = b"x" * (100 * 2**20)
    print(len(data))
