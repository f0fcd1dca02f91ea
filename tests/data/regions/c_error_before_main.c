#include <stdio.h>

int f_gold(char str[]) {
  int zeros = 0, ones = 0;
  for (char ch : str) (ch == '0') ? ++zeros : ++ones;
  return zeros == 1 || ones == 1;
}

int main(void) {
    char param0[][10] = {"0001", "11"};
    for (int i = 0; i < 2; ++i) {
        printf("%d\n", f_gold(param0[i]));
    }
    return 0;
}
