/* check_tls.c: to come */
#include "lbd.h"
