// 200,000 small heap nodes: malloc's per-chunk overhead shows up in the peak.
#include <stdio.h>
#include <stdlib.h>

struct node { long value; struct node *next; };

int main(void) {
    struct node *head = NULL;
    for (long i = 0; i < 200000; i++) {
        struct node *item = malloc(sizeof *item);
        if (item == NULL) { perror("malloc"); return 1; }
        item->value = i;
        item->next = head;
        head = item;
    }
    long total = 0;
    for (struct node *item = head; item != NULL; item = item->next) total += item->value;
    printf("%ld\n", total);
    return 0;
}
