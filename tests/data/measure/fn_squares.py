# perfhint: args=(10**5,)
def squares(n):
    return [i * i for i in range(n)]
