#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int sum(const int *xs, int n) {
    int total = 0;
    for (int i = 0; i < n; ++i) total += xs[i];
    return total;
}

// perfhint: args=(1000000,)
int main(void) {
    int n = 1000000;
    int *xs = malloc(n * sizeof *xs);
    for (int i = 0; i < n; ++i) xs[i] = rand();
    qsort(xs, n, sizeof *xs, cmp);
    printf("%d\n", sum(xs, n));
    free(xs);
    return 0;
}
