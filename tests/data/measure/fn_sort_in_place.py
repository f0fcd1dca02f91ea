# perfhint: args=([3, 1, 2] * 10**4,)
def sorted_pairs(values):
    values.sort()  # mutates its argument: the measured call must get a fresh copy
    return list(zip(values, values[1:]))
