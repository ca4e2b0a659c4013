# The packages feed's lang/rust/rust-package.mk, reduced: the target list
# and the default install rule (the Makefile defines its own).
RUST_ARCH_DEPENDS:=@(aarch64||arm||i386||i686||mips||mipsel||mips64||mips64el||mipsel||powerpc64||riscv64||x86_64)
define RustBinPackage
endef
