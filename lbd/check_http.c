/* check_http.c: to come */
#include "lbd.h"
