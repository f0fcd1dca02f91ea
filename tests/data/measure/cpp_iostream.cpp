// libstdc++ and iostreams loaded, nothing else: the C++ baseline.
#include <iostream>

int main() {
    std::cout << "hello" << std::endl;
    return 0;
}
