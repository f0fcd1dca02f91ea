/* A C program whose peak RSS `perfhint measure` checks for real: the hint sits on main. */
#include <stdio.h>
#include <stdlib.h>

#define N 2000000

int main(void) {
    long *sums = malloc(sizeof(long) * N);
    if (!sums) return 1;
    sums[0] = 0;
    for (int i = 1; i < N; i++) sums[i] = sums[i - 1] + i % 7;
    printf("%ld\n", sums[N - 1]);
    free(sums);
    return 0;
}
