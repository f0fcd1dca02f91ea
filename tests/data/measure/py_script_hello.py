# The interpreter's own footprint.
if __name__ == "__main__":
    print("hello")
