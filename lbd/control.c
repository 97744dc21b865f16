/* control.c: to come */
#include "lbd.h"
