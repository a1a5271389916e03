"""Mediprima: a GP consultation (101076) for Popescu (92080304510), whose CPAS covers the patient share
(README "Tarification and Mediprima"): the Tarification contract at Mediprima's address, transaction
tariffmediprima. Prints what the SPP Social Integration, the CPAS and the patient pay."""

import datetime as dt

from sandbox_client import commons_input, connect, header, tariff_amounts

from mycarenet_ic.clients.messages import tariff_request

client, me = connect("mediprima")
day = dt.date.today() - dt.timedelta(days=2)
answer = client.service.tarificationConsultation(
    **header(), CommonInput=commons_input(me),
    Routing={"CareReceiver": {"Ssin": "92080304510"}, "ReferenceDate": day},
    Detail={"_value_1": tariff_request(me.nihii, me.ssin, "92080304510", day, ["101076"],
                                       transaction="tariffmediprima"),
            "ContentType": "text/xml", "ContentEncoding": "none"})
for code, amounts in tariff_amounts(answer.Return.Detail).items():
    print(f"{code}: fee {amounts['fee']}, SPP {amounts['reimbursement-fpssi']}, CPAS {amounts['reimbursement-pswc']}, "
          f"patient {amounts['patientfee']}")
