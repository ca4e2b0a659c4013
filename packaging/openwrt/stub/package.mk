# BuildPackage, reduced to what check-openwrt needs: `make install-root`
# runs Package/NAME/install with $(1) = $(ROOT), `make show-metadata`
# prints the fields the buildroot's metadata scanner reads.
PKG_BUILD_DIR?=$(TMPDIR)/build
define BuildPackage
$$(eval $$(Package/$(1)))
install-root:
	$$(call Package/$(1)/install,$$(ROOT))
show-metadata:
	@echo 'Package: $(1)'
	@echo 'Version: $$(PKG_VERSION)-$$(PKG_RELEASE)'
	@echo 'Depends: $$(strip $$(DEPENDS))'
	@echo 'Conffiles: $$(strip $$(Package/$(1)/conffiles))'
endef
