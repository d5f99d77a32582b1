# patchgate operator image: multi-stage on Debian bookworm.
#
#   build    the -dev packages and CMake (Release, no tests) -> /out/bin
#   runtime  debian:bookworm-slim plus only the shared libraries the binaries
#            link (found with ldd + dpkg -S at build time), run as UID 65532,
#            nothing written to the root filesystem (readOnlyRootFilesystem).
#
# With Docker:   docker build -t patchgate.dev/patchgate-operator:dev .
# Without it:    hack/image.sh  (buildah; the base image is made locally with
#                mmdebstrap, so no registry is needed)
#
# patchctl: not written yet. Every target with an install() rule lands in
# /out/bin, so it ships here as soon as it exists.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
# hack/deps.sh BUILD_PKGS, minus what only the tests need (googletest, gmock).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libcpprest-dev libyaml-cpp-dev prometheus-cpp-dev libgrpc++-dev libprotobuf-dev \
      protobuf-compiler protobuf-compiler-grpc libabsl-dev nlohmann-json3-dev \
      libssl-dev libboost-system-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Parallel compile jobs (default: every CPU).
ARG JOBS=""
COPY CMakeLists.txt ./
COPY operator/ operator/
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPATCHGATE_BUILD_TESTS=OFF \
 && cmake --build /build -j"${JOBS:-$(nproc)}" \
 && cmake --install /build --prefix /out --strip
# The Debian packages that own the shared libraries the binaries load. A library
# no package owns (e.g. from /usr/local) fails the build instead of a broken image.
RUN set -e; for lib in $(ldd /out/bin/* | awk '/=> \//{print $3}' | sort -u); do \
      f=$(readlink -f "$lib"); \
      pkg=$(dpkg -S "$f" 2>/dev/null || dpkg -S "${f#/usr}" 2>/dev/null || dpkg -S "$lib" 2>/dev/null) \
        || { echo "no Debian package owns $lib" >&2; exit 1; }; \
      echo "${pkg%%:*}"; \
    done | sort -u > /out/runtime-packages \
 && echo "runtime packages:" $(cat /out/runtime-packages)

FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /out/runtime-packages /tmp/runtime-packages
# Today: libabsl20220623 libcivetweb1 libcpprest2.10 libprometheus-cpp-core1.0
# libprometheus-cpp-pull1.0 libssl3 libyaml-cpp0.7 (+ their dependencies).
RUN apt-get update \
 && xargs -a /tmp/runtime-packages apt-get install -y --no-install-recommends \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log /tmp/runtime-packages
COPY --from=build /out/bin/ /usr/local/bin/
LABEL org.opencontainers.image.title="patchgate-operator" \
      org.opencontainers.image.description="patchgate: tested, approved, reversible production patches"
# Non-root, numeric (Pod Security "restricted" checks runAsNonRoot by UID).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/patchgate-operator"]
