// 64 MiB from calloc but only the first quarter written: untouched pages are not resident.
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    size_t n = (size_t)64 << 20;
    unsigned char *buffer = calloc(n, 1);
    if (buffer == NULL) { perror("calloc"); return 1; }
    for (size_t i = 0; i < n / 4; i++) buffer[i] = (unsigned char)i;
    volatile size_t probe = n / 8;
    printf("%u\n", buffer[probe]);
    free(buffer);
    return 0;
}
