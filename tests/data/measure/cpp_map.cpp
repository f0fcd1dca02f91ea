// A red-black tree of 100,000 entries: 48-byte nodes plus allocator overhead.
#include <iostream>
#include <map>

int main() {
    std::map<int, long> squares;
    for (int i = 0; i < 100000; i++) squares[i] = static_cast<long>(i) * i;
    long total = 0;
    for (const auto &entry : squares) total += entry.second % 7;
    std::cout << total << std::endl;
    return 0;
}
