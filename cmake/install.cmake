# `cmake --install`, `--target uninstall` and the Debian package (CPack).
# docs/systemd.md describes the layout and why; tests/unit/package checks it.
include(GNUInstallDirs)

# Binaries: meshd and meshctl in bindir; the CNI plugin where containerd
# and CRI-O look for plugins by default (their bin_dir), whatever the prefix.
install(TARGETS meshd meshctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS meshd-cni RUNTIME DESTINATION /opt/cni/bin)

# The unit names meshd's path, which is known only at install time: CPack
# installs again under its own prefix (/usr) whatever the build's prefix is.
# So the unit is configured by the install step, from the prefix in effect
# (one file per prefix: an install and a cpack may run at once).
install(CODE "
  set(MESHD_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  set(MESHD_CONFIG_FILE /etc/meshd/meshd.toml)
  string(MD5 prefix_id \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(${CMAKE_SOURCE_DIR}/systemd/meshd.service.in
                 ${CMAKE_BINARY_DIR}/systemd/install/\${prefix_id}/meshd.service @ONLY)
  file(INSTALL ${CMAKE_BINARY_DIR}/systemd/install/\${prefix_id}/meshd.service
       DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
")
install(FILES systemd/meshd.tmpfiles DESTINATION lib/tmpfiles.d RENAME meshd.conf)

# The configuration: /etc/meshd, where meshd looks by default, whatever the
# prefix (a package's conffile). An operator's file is never overwritten:
# an install over an existing one leaves it (and out of install_manifest.txt,
# so an uninstall leaves it too).
install(CODE "
  if(EXISTS \"\$ENV{DESTDIR}/etc/meshd/meshd.toml\")
    message(STATUS \"Keeping: \$ENV{DESTDIR}/etc/meshd/meshd.toml (never overwritten)\")
  else()
    file(INSTALL ${CMAKE_SOURCE_DIR}/systemd/meshd.toml DESTINATION /etc/meshd
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
")

# `cmake --build B --target uninstall` (or `cmake -P B/cmake_uninstall.cmake`)
# removes every file install_manifest.txt lists, under $DESTDIR.
configure_file(${CMAKE_SOURCE_DIR}/cmake/uninstall.cmake.in ${CMAKE_BINARY_DIR}/cmake_uninstall.cmake @ONLY)
add_custom_target(uninstall COMMAND ${CMAKE_COMMAND} -P ${CMAKE_BINARY_DIR}/cmake_uninstall.cmake
                  COMMENT "Removing what install_manifest.txt lists")

# The Debian package: `cpack -G DEB --config B/CPackConfig.cmake` in B, or
# `cmake --build B --target package`.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME meshd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "meshd")
set(CPACK_PACKAGE_CONTACT "meshd maintainers <meshd@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "WireGuard-encrypted pod network for container clusters")
set(CPACK_PACKAGE_DESCRIPTION
    "meshd keeps each node's WireGuard mesh, pod routes and CNI configuration in the\n"
    "state its cluster agrees on. The package holds the daemon (meshd), its REST\n"
    "client (meshctl), the CNI plugin (meshd-cni, in /opt/cni/bin) and a hardened\n"
    "systemd unit, installed disabled.")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # meshd_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The shared libraries' packages, from dpkg-shlibdeps; then what meshd runs
# or needs beside them: wg(8) for operators, wireguard-go where the kernel has
# no WireGuard (the userspace backend).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "wireguard-tools")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "wireguard-go")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "containernetworking-plugins, nftables")
set(MESHD_DEB_CONTROL ${CMAKE_BINARY_DIR}/packaging/debian)
foreach(script postinst prerm postrm conffiles)
  configure_file(${CMAKE_SOURCE_DIR}/packaging/debian/${script} ${MESHD_DEB_CONTROL}/${script} COPYONLY)
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${MESHD_DEB_CONTROL}/postinst ${MESHD_DEB_CONTROL}/prerm ${MESHD_DEB_CONTROL}/postrm
    ${MESHD_DEB_CONTROL}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)  # scripts 0755, conffiles 0644
include(CPack)
