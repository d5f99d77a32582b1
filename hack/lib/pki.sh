# Certificates and kubeconfigs of a local cluster, made with openssl. Sourced.
# Everything is signed by one CA per cluster (pki/ca.crt), valid ten years: the
# cluster is thrown away by `down`, and a long validity avoids expiries on a
# reused machine. RSA 2048 keys: every client (Go, OpenSSL in the C++ operator,
# curl) reads them.

# CA + service-account key pair.
pki_init() { # pki-dir
  local pki=$1
  mkdir -p "$pki"
  openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -days 3650 -subj "/CN=patchgate-${NAME}-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
    -out "$pki/ca.crt" 2>/dev/null
  # Signs and verifies service-account tokens (apiserver + token controller).
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

# A key and a certificate signed by the CA.
#   kind: client | server | both
#   sans: comma-separated "IP:..,DNS:.." (servers only), may be empty
pki_cert() { # pki-dir file-stem kind subject [sans]
  local pki=$1 stem=$2 kind=$3 subj=$4 sans=${5:-}
  local ext="$pki/$stem.ext" eku
  case $kind in
    client) eku=clientAuth ;;
    server) eku=serverAuth ;;
    both) eku=serverAuth,clientAuth ;;
  esac
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n $sans ]] && echo "subjectAltName=$sans"
  } > "$ext"
  openssl genrsa -out "$pki/$stem.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$stem.key" -subj "$subj" -out "$pki/$stem.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$stem.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 3650 -extfile "$ext" -out "$pki/$stem.crt" 2>/dev/null
  rm -f "$pki/$stem.csr" "$ext"
}

# A kubeconfig that names the CA, certificate and key by path (what most tools
# and kwokctl write).
write_kubeconfig() { # file server user cert key ca
  local file=$1 server=$2 user=$3 cert=$4 key=$5 ca=$6
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: patchgate-${NAME}
  cluster:
    server: ${server}
    certificate-authority: ${ca}
users:
- name: ${user}
  user:
    client-certificate: ${cert}
    client-key: ${key}
contexts:
- name: patchgate-${NAME}
  context:
    cluster: patchgate-${NAME}
    user: ${user}
current-context: patchgate-${NAME}
EOF
  chmod 600 "$file"
}

# The same with the PEMs embedded as *-data (base64), for copying elsewhere.
write_kubeconfig_embedded() { # file server user cert key ca
  local file=$1 server=$2 user=$3 cert=$4 key=$5 ca=$6
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: patchgate-${NAME}
  cluster:
    server: ${server}
    certificate-authority-data: $(base64 -w0 "$ca")
users:
- name: ${user}
  user:
    client-certificate-data: $(base64 -w0 "$cert")
    client-key-data: $(base64 -w0 "$key")
contexts:
- name: patchgate-${NAME}
  context:
    cluster: patchgate-${NAME}
    user: ${user}
current-context: patchgate-${NAME}
EOF
  chmod 600 "$file"
}
