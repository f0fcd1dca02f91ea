// A string grown to 16 MB by doubling appends: the peak includes the last reallocation.
#include <iostream>
#include <string>

int main() {
    std::string text;
    for (int i = 0; i < (16 << 20); i++) text.push_back(static_cast<char>('a' + i % 26));
    std::cout << text.size() << " " << text[text.size() / 2] << std::endl;
    return 0;
}
