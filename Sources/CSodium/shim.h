#ifndef BOOKSWARM_CSODIUM_SHIM_H
#define BOOKSWARM_CSODIUM_SHIM_H
#include <sodium.h>
#endif
