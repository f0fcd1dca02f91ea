# perfhint: args=(100,)
def blob(n_mib):
    return b"x" * (n_mib * 2**20)
