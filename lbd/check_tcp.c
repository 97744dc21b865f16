/* check_tcp.c: to come */
#include "lbd.h"
