#ifndef BOOKSWARM_CSQLITE_SHIM_H
#define BOOKSWARM_CSQLITE_SHIM_H
#include <sqlite3.h>
#endif
