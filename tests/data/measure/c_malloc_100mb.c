// 100 MiB from malloc, every byte written: peak RSS is about 101 MiB.
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    size_t n = (size_t)100 << 20;
    unsigned char *buffer = malloc(n);
    if (buffer == NULL) { perror("malloc"); return 1; }
    for (size_t i = 0; i < n; i++) buffer[i] = (unsigned char)(i * 31u);
    volatile size_t probe = n / 2;  // keeps the compiler from folding the buffer away
    printf("%u\n", buffer[probe]);
    free(buffer);
    return 0;
}
