"""Tarification: the tariff of a GP consultation (101076) for Desmet Jules (82112502158), ordinary patient
(README "Tarification and Mediprima"). Prints fee, insurer and patient share."""

import datetime as dt

from sandbox_client import commons_input, connect, header, tariff_amounts

from mycarenet_ic.clients.messages import tariff_request

client, me = connect("tarification")
day = dt.date.today() - dt.timedelta(days=2)
answer = client.service.tarificationConsultation(
    **header(), CommonInput=commons_input(me),
    Routing={"CareReceiver": {"Ssin": "82112502158"}, "ReferenceDate": day},
    Detail={"_value_1": tariff_request(me.nihii, me.ssin, "82112502158", day, ["101076"]),  # KMEHR
            "ContentType": "text/xml", "ContentEncoding": "none"})
for code, amounts in tariff_amounts(answer.Return.Detail).items():
    print(f"{code}: fee {amounts['fee']}, insurer {amounts['reimbursement']}, patient {amounts['patientfee']}")
