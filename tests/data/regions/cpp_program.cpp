#include <iostream>
#include <vector>

namespace geometry {
struct Point {
    double x, y;
    double norm() const { return x * x + y * y; }
};

int main() { return 1; }  // not the program's main: it is inside a namespace
}  // namespace geometry

template <typename T>
T total(const std::vector<T>& xs) {
    T sum{};
    for (const auto& x : xs) sum += x;
    return sum;
}

// perfhint: args=(10**7,)
int
main(int argc, char** argv) {
    std::vector<double> xs(10000000, 1.0);
    std::cout << total(xs) << "\n";
    return 0;
}
