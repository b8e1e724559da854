/* placeholder: the guest_memfd benchmark is being written */
#include "qemu/osdep.h"

int main(void)
{
    return 0;
}
