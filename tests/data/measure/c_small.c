// The C runtime's own footprint: a loop and a printf, about 1 MB resident.
#include <stdio.h>

int main(void) {
    long total = 0;
    for (long i = 0; i < 1000; i++) total += i * i;
    printf("%ld\n", total);
    return 0;
}
