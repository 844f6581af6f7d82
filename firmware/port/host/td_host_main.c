/* The host port's entry point, apart from td_port_host.c so that host tests may link the
 * port with a main() of their own. */
#include "td_port.h"

int main(void)
{
    td_port_exit(td_app_main());
}
