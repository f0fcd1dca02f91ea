def first(n):
    return [0] * n


def being_edited(xs):
    total = sum(xs, (
    return total


def after_the_error(n):
    return {i: i * i for i in range(n)}


class Later:
    def method(self):
        return 1


if __name__ == "__main__":
    after_the_error(10**4)
