#include <stdlib.h>

// perfhint: args=("input.txt",)
int main(int argc, char **argv) {
    char *buffer = malloc(64 << 20);
    free(buffer);
    return 0;
}
