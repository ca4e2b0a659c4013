# Stand-in for OpenWrt's include/ and the packages feed's Rust support, so
# check-openwrt can evaluate the package Makefile and run its install
# recipe into a directory: the variables and macros the Makefile uses,
# defined as the buildroot defines them (install(1) modes as in
# include/rules.mk).
INCLUDE_DIR:=$(TOPDIR)/include
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
CP:=cp -fpR
