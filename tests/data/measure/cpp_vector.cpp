// A 32 MB std::vector<double>, filled and summed.
#include <iostream>
#include <numeric>
#include <vector>

int main() {
    std::vector<double> values(4000000);
    std::iota(values.begin(), values.end(), 0.0);
    std::cout << std::accumulate(values.begin(), values.end(), 0.0) << std::endl;
    return 0;
}
