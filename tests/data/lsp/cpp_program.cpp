#include <vector>

int main() {
    std::vector<double> values(1 << 24, 1.0);
    return static_cast<int>(values[0]);
}
