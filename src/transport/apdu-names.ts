/**
 * Names of the setls card commands (docs/apdu-protocol.md §2), for traces and error messages.
 * imports nothing.
 */

/** A short name for a command APDU header, e.g. `PROCESS-EAP-ENCRYPT`. */
export function commandName(cla: number, ins: number, p1: number, p2: number): string {
  // Interindustry classes 00–03 / 40–4F carry SELECT and MANAGE CHANNEL on any logical channel.
  const interindustry = (cla & 0xfc) === 0x00 || (cla & 0xf0) === 0x40;
  if (interindustry && ins === 0xa4) return 'SELECT';
  if (interindustry && ins === 0x70) return p1 === 0x80 ? 'MANAGE-CHANNEL(close)' : 'MANAGE-CHANNEL(open)';
  switch (ins) {
    case 0x20:
      return p2 === 0x01 ? 'VERIFY-PIN(operator)' : 'VERIFY-PIN(user)';
    case 0x24:
      return p2 === 0x01 ? 'CHANGE-PIN(operator)' : 'CHANGE-PIN(user)';
    case 0x2c:
      return p2 === 0x01 ? 'UNBLOCK-PIN(operator)' : 'UNBLOCK-PIN(user)';
    case 0x16:
      return 'SET-IDENTITY';
    case 0x19:
      return p1 === 0x10 ? 'RESET-STATE' : 'GET-STATE';
    case 0x80:
      if (p2 & 0x80) return (p2 & 0x7f) === 0x15 ? 'PROCESS-EAP-ENCRYPT(alert)' : 'PROCESS-EAP-ENCRYPT';
      return p1 & 0x02 ? 'PROCESS-EAP(START)' : 'PROCESS-EAP';
    case 0xa6:
      return 'GET-SESSION-KEY';
    case 0x86:
      return 'GET-EXPORTED-PARAMETER';
    case 0xca:
      return p1 === 0x01 ? 'GET-DATA(identity)' : 'GET-DATA(card info)';
    case 0x46:
      return 'GENERATE-KEY';
    case 0x4a:
      return 'GET-CSR';
    case 0xda:
      return 'PUT-CHAIN';
    case 0xdc:
      return 'PUT-POLICY';
    case 0xd2:
      return p2 === 0x01 ? 'PUT-TRUST-ANCHOR(clear)' : 'PUT-TRUST-ANCHOR';
    case 0xd4:
      return p2 === 0x01 ? 'PUT-PSK(delete)' : 'PUT-PSK';
    case 0xde:
      return 'PUT-IDENTITY-POLICY';
    case 0xd6:
      return 'SET-CLOCK';
    case 0xa8:
      return 'EXPORT-SESSION';
    case 0xaa:
      return 'EXPORTER';
    case 0xc0:
      return 'GET-RESPONSE';
    case 0xd8:
      return p2 === 0 && p1 === 0 ? 'TLS-SE RECV/RESET' : `TLS-SE RECV(${p1 === 1 ? 'decrypt' : p1 === 2 ? 'encrypt' : p1 === 0 ? 'handshake' : 'P1 ' + p1})`;
    case 0x85:
      return 'TLS-SE SET-KEY';
    case 0x12:
      return 'FETCH';
    default:
      return `INS ${ins.toString(16).padStart(2, '0').toUpperCase()}`;
  }
}

/** Commands whose P1 bit 0 is the segmentation "More" bit (the others use P1 as a parameter). */
export function isChainable(ins: number): boolean {
  return ins === 0x80 || ins === 0xda || ins === 0x4a || ins === 0x16 || ins === 0x86 || ins === 0xd2;
}

/** Commands whose data is a secret (PINs, PUKs, PUT-PSK keys): never printed. */
export function hasSecretData(ins: number): boolean {
  return ins === 0x20 || ins === 0x24 || ins === 0x2c || ins === 0xd4;
}

/**
 * Commands whose response is a secret (session keys, the EXPORT-SESSION blob, EXPORTER keying
 * material): never printed, nor the GET RESPONSE / FETCH blocks that continue them.
 */
export function hasSecretResponse(ins: number): boolean {
  return ins === 0xa6 || ins === 0xa8 || ins === 0xaa;
}
