/* check_send.c: to come */
#include "lbd.h"
