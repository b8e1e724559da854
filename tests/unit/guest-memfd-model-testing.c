/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * (being split out of system/guest-memfd-model.c)
 */

#include "qemu/osdep.h"
